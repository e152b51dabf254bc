"""`llm_analysis`: answer named tasks about a transcript with a local or remote LLM.

Import `processors.llm.processor` for the processor itself; this package's `__init__`
stays light so that importing the params does not pull in torch or transformers.
"""
