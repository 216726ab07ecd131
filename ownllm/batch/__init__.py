"""Batch inference over an OpenAI-compatible API: OpenAI Batch API files in and out."""
