"""A response's output, built from the core's deltas: the stream's events as they happen, and the final object.

The non-streaming answer runs the same builder and keeps only the last state, so it is the fold of the stream by
construction. Items open when the kind of output changes (reasoning, answer text, a new tool call) and close when
the next one opens or the turn ends; every event carries the next ``sequence_number``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from routes.responses import ids
from routes.responses.errors import response_error
from routes.shared.vllm_response import openai_logprobs
from server.errors import ServerError
from server.types import Delta, Finish, TokenLogprob, ToolCallDelta, Usage

Event = dict[str, Any]


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def answer_tokens(entries: list[TokenLogprob] | None, content: str) -> list[dict[str, Any]]:
    """The logprob entries of the tokens that wrote ``content``: a delta's entries also cover the control tokens
    and reasoning that came before the answer text in the same step, so the entries are taken from the end until
    their bytes cover the text."""
    tokens = (openai_logprobs(entries) or {}).get("content", [])
    wanted, taken = len(content.encode()), 0
    for index in range(len(tokens) - 1, -1, -1):
        taken += len(tokens[index]["bytes"])
        if taken >= wanted:
            return tokens[index:]  # type: ignore[no-any-return]
    return tokens  # type: ignore[no-any-return]


class Output:
    """One response's output items and events. ``seal`` (when the client asked for encrypted reasoning) turns a
    reasoning text into its ``encrypted_content``; ``logprobs``: output text carries its tokens' logprobs."""

    def __init__(self, response: dict[str, Any], *, seal: Callable[[str], str] | None, logprobs: bool) -> None:
        self.response = response
        self.seal = seal
        self.logprobs = logprobs
        self.sequence = 0
        self._item: dict[str, Any] | None = None  # the open item
        self._kind = ""  # reasoning | message | function_call
        self._text: list[str] = []
        self._tokens: list[dict[str, Any]] = []

    @property
    def output(self) -> list[dict[str, Any]]:
        return self.response["output"]  # type: ignore[no-any-return]

    def event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, **fields, "sequence_number": self.sequence}
        self.sequence += 1
        return event

    def _snapshot(self, kind: str) -> Event:
        return self.event(kind, response=copy.deepcopy(self.response))

    def opening(self) -> list[Event]:
        """``response.created`` (``queued`` for a background run, else ``in_progress``), then ``in_progress``."""
        created = self._snapshot("response.created")
        self.response["status"] = "in_progress"
        return [created, self._snapshot("response.in_progress")]

    # ---- items --------------------------------------------------------------------------------------

    def _open(self, kind: str, item: dict[str, Any]) -> list[Event]:
        events = self._close("completed")
        self._item, self._kind, self._text, self._tokens = item, kind, [], []
        events.append(self.event("response.output_item.added", output_index=len(self.output), item=copy.deepcopy(item)))
        self.output.append(item)
        return events

    def _where(self) -> dict[str, Any]:
        assert self._item is not None
        return {"item_id": self._item["id"], "output_index": len(self.output) - 1}

    def _open_reasoning(self) -> list[Event]:
        events = self._open("reasoning", {"id": ids.new_id("rs"), "type": "reasoning", "summary": [], "content": []})
        part = {"type": "reasoning_text", "text": ""}
        events.append(self.event("response.content_part.added", **self._where(), content_index=0, part=part))
        return events

    def _open_message(self) -> list[Event]:
        item = {"id": ids.new_id("msg"), "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
        events = self._open("message", item)
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        events.append(self.event("response.content_part.added", **self._where(), content_index=0, part=part))
        return events

    def _open_call(self, part: ToolCallDelta) -> list[Event]:
        item: dict[str, Any] = {
            "id": ids.new_id("fc"),
            "type": "function_call",
            "status": "in_progress",
            "arguments": "",
            "call_id": part.id,
            "name": part.name or "",
        }
        if part.namespace:
            item["namespace"] = part.namespace
        return self._open("function_call", item)

    def _close(self, status: str) -> list[Event]:
        item, kind = self._item, self._kind
        if item is None:
            return []
        self._item, self._kind = None, ""
        text = "".join(self._text)
        where = {"item_id": item["id"], "output_index": len(self.output) - 1}
        events: list[Event] = []
        if kind == "reasoning":
            part = {"type": "reasoning_text", "text": text}
            events.append(self.event("response.reasoning_text.done", **where, content_index=0, text=text))
            events.append(self.event("response.content_part.done", **where, content_index=0, part=part))
            item["content"] = [part]
            if self.seal is not None:
                item["encrypted_content"] = self.seal(text)
        elif kind == "message":
            tokens = self._tokens
            part = {"type": "output_text", "annotations": [], "logprobs": tokens, "text": text}
            events.append(self.event("response.output_text.done", **where, content_index=0, text=text, logprobs=tokens))
            events.append(self.event("response.content_part.done", **where, content_index=0, part=part))
            item["content"] = [part]
            item["status"] = status
        else:
            item["arguments"] = text
            item["status"] = status
            events.append(
                self.event("response.function_call_arguments.done", **where, name=item["name"], arguments=text)
            )
        events.append(self.event("response.output_item.done", output_index=where["output_index"], item=item))
        return events

    # ---- the run ------------------------------------------------------------------------------------

    def feed(self, delta: Delta) -> list[Event]:
        events: list[Event] = []
        if delta.reasoning:
            if self._kind != "reasoning":
                events += self._open_reasoning()
            self._text.append(delta.reasoning)
            events.append(
                self.event("response.reasoning_text.delta", **self._where(), content_index=0, delta=delta.reasoning)
            )
        if delta.content:
            if self._kind != "message":
                events += self._open_message()
            self._text.append(delta.content)
            tokens = answer_tokens(delta.logprobs, delta.content) if self.logprobs else []
            self._tokens.extend(tokens)
            events.append(
                self.event(
                    "response.output_text.delta", **self._where(), content_index=0, delta=delta.content, logprobs=tokens
                )
            )
        for part in delta.tool_calls:
            if part.id is not None or self._kind != "function_call":
                events += self._open_call(part)
            if part.arguments:
                self._text.append(part.arguments)
                events.append(
                    self.event("response.function_call_arguments.delta", **self._where(), delta=part.arguments)
                )
        return events

    def close(self, finish: Finish, completed_at: float | None = None) -> list[Event]:
        """The last events: open items closed, the final status, usage, and exactly one terminal event."""
        response = self.response
        response["usage"] = usage_object(finish.usage)
        if finish.truncated:
            return self.failed(finish.error_of())
        if finish.reason == "length":
            events = self._close("incomplete")
            response["status"] = "incomplete"
            response["incomplete_details"] = {"reason": "max_output_tokens"}
            events.append(self._snapshot("response.incomplete"))
            return events
        events = self._close("completed")
        response["status"] = "completed"
        response["completed_at"] = int(completed_at if completed_at is not None else ids.now())
        events.append(self._snapshot("response.completed"))
        return events

    def failed(self, error: ServerError) -> list[Event]:
        """The run failed: the open item ends incomplete, an ``error`` event, the response ``failed``."""
        response = self.response
        events = self._close("incomplete")
        response["status"] = "failed"
        response["error"] = response_error(error)
        events.append(self.event("error", code=response["error"]["code"], message=error.message, param=None))
        events.append(self._snapshot("response.failed"))
        return events

    def cancelled(self) -> list[Event]:
        """A background response cancelled mid-run: the open item ends incomplete, the response ``cancelled``. The
        schema has no terminal event for that: the stream ends after the item's closing events."""
        events = self._close("incomplete")
        self.response["status"] = "cancelled"
        return events


def replay(response: dict[str, Any]) -> list[Event]:
    """The events of a finished response, rebuilt from its object (``GET ?stream=true`` after the run)."""
    final = copy.deepcopy(response)
    skeleton = {**copy.deepcopy(response), "status": "in_progress", "output": []}
    skeleton.update(error=None, incomplete_details=None, completed_at=None)
    skeleton.pop("usage", None)
    out = Output(skeleton, seal=None, logprobs=False)
    events = out.opening()
    for index, item in enumerate(final["output"]):
        added = copy.deepcopy(item)
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "reasoning":
            added.update(content=[])
            added.pop("encrypted_content", None)
        elif item["type"] == "message":
            added.update(content=[], status="in_progress")
        elif item["type"] == "function_call":
            added.update(arguments="", status="in_progress")
        events.append(out.event("response.output_item.added", output_index=index, item=added))
        if item["type"] == "reasoning":
            for part in item.get("content", []):
                events.append(out.event("response.content_part.added", **where, content_index=0,
                                        part={"type": "reasoning_text", "text": ""}))  # fmt: skip
                events.append(out.event("response.reasoning_text.delta", **where, content_index=0, delta=part["text"]))
                events.append(out.event("response.reasoning_text.done", **where, content_index=0, text=part["text"]))
                events.append(out.event("response.content_part.done", **where, content_index=0, part=part))
        elif item["type"] == "message":
            for part in item["content"]:
                empty = {**part, "text": "", "logprobs": []}
                events.append(out.event("response.content_part.added", **where, content_index=0, part=empty))
                events.append(out.event("response.output_text.delta", **where, content_index=0, delta=part["text"],
                                        logprobs=part.get("logprobs", [])))  # fmt: skip
                events.append(out.event("response.output_text.done", **where, content_index=0, text=part["text"],
                                        logprobs=part.get("logprobs", [])))  # fmt: skip
                events.append(out.event("response.content_part.done", **where, content_index=0, part=part))
        elif item["type"] == "function_call":
            events.append(out.event("response.function_call_arguments.delta", **where, delta=item["arguments"]))
            events.append(out.event("response.function_call_arguments.done", **where, name=item["name"],
                                    arguments=item["arguments"]))  # fmt: skip
        events.append(out.event("response.output_item.done", output_index=index, item=item))
    terminal = {"completed": "response.completed", "incomplete": "response.incomplete", "failed": "response.failed"}
    if final["status"] in terminal:
        if final["status"] == "failed" and final.get("error"):
            error = final["error"]
            events.append(out.event("error", code=error["code"], message=error["message"], param=None))
        out.response = final
        events.append(out._snapshot(terminal[final["status"]]))
    return events
