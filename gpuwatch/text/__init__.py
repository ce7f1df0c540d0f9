"""The text faces: a snapshot, history and events as plain text, and the formatting they share.

Place in the flow: snapshot or history → **text** → the terminal (`gpuwatch snapshot`,
`query`, `events`) and the TUI's cells. `report` writes a snapshot, `history_report` history
and events, `fmt` one value, `ensembles` the order models are listed in.
"""
