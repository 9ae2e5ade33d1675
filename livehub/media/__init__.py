"""WebRTC ingest and playback, relay, recording and HLS (see issue: media)."""
