"""Artifacts on disk and over HTTP: the store in the image folder and the fetcher.

``store`` keeps a file invisible until its hash is proven (``.partial/`` then a
rename, ``.quarantine/`` for a bad hash); ``http_fetch`` streams one artifact into it
with HTTP Range resume and a shared bandwidth cap.
"""
