"""Recording files: layout, checksums, sealing and crash repair; transcription jobs (vosk).

Imports only hotline infra (settings, db, bus, accounts).
"""
