"""The dataset model: projects, datasets and items (namespace), Supervisely annotations and meta,
media probing, names, and the Supervisely folder layout. Built on the blob engine."""
