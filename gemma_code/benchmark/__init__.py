"""`gemma-code bench`: the engine's speed beside llama.cpp's own (speed.py), the prompts it
measures with (prompts.py), and llama-bench's command line (llama_bench.py). The plain C-API
reference loop is engine/raw.py: only gemma_code/engine/ imports llama_cpp."""
