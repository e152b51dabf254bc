"""Audio processors: `transcription` (faster-whisper) and `diarization` (VAD, speaker
embeddings, clustering, optional transcription with a speaker per word).

Submodules import their heavy dependencies (PyAV, torch, faster-whisper) on use.
"""

SAMPLE_RATE = 16000
"""Every stage works on 16 kHz mono float32 audio."""
