"""`ouzel sim`: a GPU-free, OpenAI-compatible vLLM stand-in driven by the planner model."""
