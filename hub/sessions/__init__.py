"""The session log: sessions started and stopped by buttons, CLI, API and script, kept crash-safely."""
