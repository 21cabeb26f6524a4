"""The leaf layer: helpers that import no first-party package and read no options.

``registry`` (the five registries' class, with specs), ``errors`` (``UserError``, one line),
``fileio`` (atomic writes), ``image`` (the one image lister and decoder, PNG output), ``html``
(the page builder), ``device`` (device choice, seeding), ``seeds`` (per-purpose random streams),
``flags`` (option scopes), ``catalog`` (published datasets and models), ``download`` (resumable,
checked downloads and safe unpacking for the download scripts). Anything here must stay usable
without the rest of the project; ``tests/test_layers.py`` checks it.
"""
