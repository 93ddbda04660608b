"""Files forkman renders into a consumer's repository (installed as ``forkman.templates``).

Placeholders are written ``[[name]]``; see :mod:`forkman.reports.templates`.
"""
