"""Sample tuning datasets shipped with the project, and the generator that makes them."""
