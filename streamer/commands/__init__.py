"""Click commands that the ``streamer`` group in ``streamer.cli`` adds."""
