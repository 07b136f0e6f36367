"""Pieces that several wire API packages share: running a request, OpenAI-style request parsing, and vLLM's
chat-completion shapes (for the routes that are vLLM behind some gateway). No wire API is defined here."""
