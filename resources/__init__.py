"""Quarterdeck's data files: SVG icons, the .desktop entry, the stylesheet.

Not code. It is a package only so that the files travel with the program
the same way from a source tree, a wheel (package-data) and a PyInstaller
bundle; `console.resources` is the one place that finds them.
"""
