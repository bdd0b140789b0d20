"""Eventarc-style Pub/Sub triggers: push subscriptions that deliver binary-mode CloudEvents."""
