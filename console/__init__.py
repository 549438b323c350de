"""The Quarterdeck desktop console (PySide6). Built in a later milestone."""
