"""Layer 3, on top: figures and the helpers the chapters call (set-up, parameter checks, findings
text, results tables).

May import every layer below; never cli.
"""
