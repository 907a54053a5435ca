"""The documented shape of an example, as msgspec structs: the streaming pass's fast path.

Decoding a line straight into these typed structs checks the structure, the roles and the
types in C, several times faster than walking dicts in Python. Only a line that does not fit
falls back to the slower diagnostic walk, which says what exactly is wrong where. Unknown
fields are ignored, as Vertex ignores them.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import msgspec

NonEmpty = msgspec.Meta(min_length=1)


class Part(msgspec.Struct, omit_defaults=True):
    text: Optional[str] = None
    # The data parts Vertex accepts besides text; kept raw: only their presence matters here.
    inlineData: Optional[msgspec.Raw] = None
    inline_data: Optional[msgspec.Raw] = None
    fileData: Optional[msgspec.Raw] = None
    file_data: Optional[msgspec.Raw] = None
    functionCall: Optional[msgspec.Raw] = None
    function_call: Optional[msgspec.Raw] = None
    functionResponse: Optional[msgspec.Raw] = None
    function_response: Optional[msgspec.Raw] = None

    def has_data(self) -> bool:
        return any(
            field is not None
            for field in (self.inlineData, self.inline_data, self.fileData, self.file_data,
                          self.functionCall, self.function_call, self.functionResponse, self.function_response)
        )  # fmt: skip


class Content(msgspec.Struct, omit_defaults=True):
    role: Literal["user", "model"]
    parts: Annotated[list[Part], NonEmpty]


class SystemInstruction(msgspec.Struct):
    """Its role, when given, is ignored (and left out of the example's hash)."""

    parts: Annotated[list[Part], NonEmpty]


class Message(msgspec.Struct):
    role: Literal["system", "user", "model"]
    content: str


class Example(msgspec.Struct, omit_defaults=True):
    """Either format; the pass checks that exactly one of contents and messages is present."""

    contents: Optional[Annotated[list[Content], NonEmpty]] = None
    systemInstruction: Optional[SystemInstruction] = None
    system_instruction: Optional[SystemInstruction] = None
    messages: Optional[Annotated[list[Message], NonEmpty]] = None


decoder = msgspec.json.Decoder(Example)
# Re-encoding a decoded example gives one spelling per content (key order, spacing and unknown
# fields gone): what the duplicate and leakage checks hash.
encoder = msgspec.json.Encoder()
