"""`python -m gemma_code` runs the CLI."""

from gemma_code.cli import main

if __name__ == "__main__":
    main()
