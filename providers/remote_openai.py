"""A vision-language model behind an OpenAI-compatible chat-completions API (vLLM, Ollama,
llama.cpp, SGLang, a hosted VLM): the page goes in as a PNG data URI, markdown comes out.

VLMs give no geometry: the provider takes the page's detected line boxes as a hint
(`wants_line_boxes`; `recognize(page, PageHints(line_boxes=...))`) and `providers.vision_lines`
locates each answered line among them. `VisionPage.geometry` says how that went ("detected",
"mixed" or "page"), and its `note` says so in the page's reason.

Errors: see the tree in `providers.errors`. A 200 whose body is not a chat completion is a
ProviderResponseError and is not retried: a server that answers its protocol wrongly once is
broken, not busy, and the breaker counts it. An answer cut off at `max_tokens` is a
ProviderRejectedError (provider_output_truncated): this page is too long for the limit.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import msgspec

from providers.errors import (
    ProviderOutputTruncatedError,
    ProviderResponseError,
    error_for_status,
    error_for_transport,
)
from providers.resilience import (
    BreakerSettings,
    CallGate,
    CircuitBreaker,
    RetryPolicy,
    RetrySettings,
    encode_png,
    read_api_key,
)
from providers.types import PageHints, PageImage, RecognizedPage
from providers.vision_lines import GeometrySource, locate_lines, parse_markdown, strip_fences

DEFAULT_PROMPT = (
    "Transcribe all the text in this page image as Markdown, exactly as written and in reading "
    "order. Use # for headings, - for bulleted lists and pipe tables for tables. Do not "
    "translate, correct, summarize or describe anything, and add no commentary: answer with "
    "the transcription only."
)


class OpenAIVisionConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="openai_vision",
    tag_field="kind",
):
    base_url: str  # up to the API version, as the OpenAI SDK takes it: http://vllm:8000/v1
    model: str
    api_key_env: str | None = None  # environment variable holding the bearer token
    prompt: str = DEFAULT_PROMPT
    max_tokens: int = 4096
    temperature: float = 0.0
    extra_body: dict[str, Any] = msgspec.field(default_factory=dict)  # e.g. vLLM's top_k
    max_image_side_px: int | None = None  # downscale larger pages before sending
    line_confidence: float = 0.9  # VLMs give no confidence; every line gets this one
    concurrency: int = 4  # pages in flight to this server at once
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 120.0  # silence allowed while the model writes
    total_timeout_s: float = 300.0  # one page, retries and waits included
    retry: RetrySettings = RetrySettings()
    breaker: BreakerSettings = BreakerSettings()

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        if self.concurrency < 1 or self.max_tokens < 1:
            raise ValueError("concurrency and max_tokens must be >= 1")
        if min(self.connect_timeout_s, self.read_timeout_s, self.total_timeout_s) <= 0:
            raise ValueError("timeouts must be > 0")
        if not 0.0 <= self.line_confidence <= 1.0:
            raise ValueError("line_confidence must be in 0..1")


class VisionPage(RecognizedPage, frozen=True, kw_only=True):
    """A RecognizedPage that says where its geometry came from (for `pipeline_metadata`)."""

    geometry: GeometrySource
    markdown: str  # the model's answer, code fences stripped


# --- The provider -----------------------------------------------------------------------------


class _ImageURL(msgspec.Struct, frozen=True, kw_only=True):
    url: str


class _Part(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    type: str
    text: str | None = None
    image_url: _ImageURL | None = None


class _Message(msgspec.Struct, frozen=True, kw_only=True):
    role: str
    content: list[_Part]


class _ReplyMessage(msgspec.Struct, frozen=True, kw_only=True):
    content: str | None = None


class _Choice(msgspec.Struct, frozen=True, kw_only=True):
    message: _ReplyMessage
    finish_reason: str | None = None


class _Completion(msgspec.Struct, frozen=True, kw_only=True):
    choices: list[_Choice]
    model: str | None = None


_COMPLETION = msgspec.json.Decoder(_Completion)
_ENCODER = msgspec.json.Encoder()


class OpenAIVisionProvider:
    def __init__(
        self,
        name: str,
        config: OpenAIVisionConfig,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.config = config
        key = read_api_key(config.api_key_env, name)
        self._client = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {key}"} if key else None,
            timeout=httpx.Timeout(config.read_timeout_s, connect=config.connect_timeout_s),
            transport=transport,
        )
        self._gate = CallGate(
            name,
            concurrency=config.concurrency,
            total_timeout_s=config.total_timeout_s,
            breaker=CircuitBreaker(name, config.breaker),
            retry=RetryPolicy(name, config.retry),
        )

    wants_line_boxes = True  # a local engine's lines on the same pixels give the answer geometry

    async def recognize(self, page: PageImage, hints: PageHints | None = None) -> VisionPage:
        """Read the page; `hints.line_boxes` give the answer its geometry."""
        line_boxes = hints.line_boxes if hints is not None else None
        self._gate.check()  # refuse fast, before encoding anything
        png = await asyncio.to_thread(encode_png, page, self.config.max_image_side_px)
        body = self._request_body(png)

        async def transcribe() -> tuple[str, str]:
            return self._answer(await self._gate.retry.call(lambda: self._complete(body)))

        markdown, model = await self._gate.run(transcribe)
        lines, geometry = await asyncio.to_thread(
            locate_lines,
            parse_markdown(markdown),
            line_boxes or (),
            page.width,
            page.height,
            confidence=self.config.line_confidence,
        )
        return VisionPage(
            lines=tuple(lines),
            model=model,
            width=page.width,
            height=page.height,
            geometry=geometry,
            markdown=markdown,
            note=f"geometry from {geometry} lines",
        )

    def _request_body(self, png: bytes) -> bytes:
        uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        message = _Message(
            role="user",
            content=[
                _Part(type="text", text=self.config.prompt),
                _Part(type="image_url", image_url=_ImageURL(url=uri)),
            ],
        )
        return _ENCODER.encode(
            {
                **self.config.extra_body,
                "model": self.config.model,
                "messages": [message],
                "max_tokens": self.config.max_tokens,
                "temperature": self.config.temperature,
            }
        )

    async def _complete(self, body: bytes) -> _Completion:
        """One POST; every httpx, HTTP and JSON failure becomes a provider error here."""
        what = f"{self.name}: chat completion"
        try:
            response = await self._client.post(
                "chat/completions", content=body, headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise error_for_transport(what, exc) from exc
        if not response.is_success:
            raise error_for_status(what, response)
        try:
            return _COMPLETION.decode(response.content)
        except msgspec.DecodeError as exc:
            raise ProviderResponseError(
                f"{what}: the answer is not a chat completion ({exc})"
            ) from exc

    def _answer(self, completion: _Completion) -> tuple[str, str]:
        """The transcription (fences stripped) and the model that wrote it."""
        choice = completion.choices[0] if completion.choices else None
        if choice is None or choice.message.content is None:
            raise ProviderResponseError(f"{self.name}: the completion has no message content")
        if choice.finish_reason == "length":
            raise ProviderOutputTruncatedError(
                f"{self.name}: the transcription stopped at max_tokens={self.config.max_tokens}"
            )
        return (strip_fences(choice.message.content.strip()), completion.model or self.config.model)

    def state(self) -> dict[str, object]:
        return {
            "kind": "openai_vision",
            "base_url": self.config.base_url,
            "model": self.config.model,
            **self._gate.state(),
        }

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> OpenAIVisionProvider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
