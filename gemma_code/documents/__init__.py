"""Files that are not source text, named with -f: PDF documents (and images, with vision)."""
