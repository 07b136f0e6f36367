"""gpt-oss prompt format: neutral requests to token ids, generated token ids to neutral events."""

from server.harmony.decode import HarmonyDecoder
from server.harmony.encoding import get_encoding
from server.harmony.render import HarmonyRenderer, RenderOptions

__all__ = ["HarmonyDecoder", "HarmonyRenderer", "RenderOptions", "get_encoding"]
