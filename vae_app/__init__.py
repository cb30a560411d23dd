"""vae_app: the dashboard's glue, beside the pages in `app_pages/`.

The worker pool that trains runs in processes (`workers`), the model a page works on (`sources`), Plotly
figures (`figures`), image mosaics (`images`), the custom components and their HTML/JS (`components`), the
Train form derived from the engine's TrainConfig (`forms`), and one module of views per page (`views`).
The engine, `vae_core`, knows nothing of any of it.
"""
