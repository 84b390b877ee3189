"""The Slack adapter: Bolt listeners store each job and acknowledge; the parser and sender translate."""
