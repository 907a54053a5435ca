"""The REST API's routers, one per Vertex resource: tuning jobs, generation (endpoints and
publisher models), metrics (TensorBoard reads) and models; api.create_app mounts them."""
