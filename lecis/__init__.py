"""The shared labedge contract: LECIS states and commands, DCDs, topics, payloads.

Both the edge unit and the hub import this package; it imports neither.
"""
