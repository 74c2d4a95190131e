"""DICOM networking: query/retrieve from a PACS, send derived series back, and ``ldct serve``.

- :mod:`pipeline.pacs.node`: peers (``AET@host:port``), TLS contexts, association setup.
- :mod:`pipeline.pacs.scu`: C-ECHO, C-FIND, C-GET, C-MOVE (to our own temporary SCP), C-STORE.
- :mod:`pipeline.pacs.web`: the same over DICOMweb (QIDO-RS, WADO-RS, STOW-RS).
- :mod:`pipeline.pacs.send`: push the series a denoise manifest lists; a per-instance send manifest.
- :mod:`pipeline.pacs.spool`, :mod:`pipeline.pacs.service`: the durable auto-denoise service.
"""
