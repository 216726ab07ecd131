"""ownllm: run your own open LLM on AWS and see the daily bill before it merges.

Pure tooling (settings, GPU facts, cost model, local stack, bench, CLI). Nothing in this
package imports the CDK, so it is fast to import from the CLI, CI and synth alike.
"""

__version__ = "0.1.0"
