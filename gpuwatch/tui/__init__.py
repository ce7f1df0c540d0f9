"""The Textual dashboard (`gpuwatch top`): a client of a daemon's API or of an in-process engine."""
