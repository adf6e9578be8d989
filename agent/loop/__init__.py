"""The loop: one task, step by step (prompt, reply, action, settle, record), with its state and policy.

`agent.Agent` runs the steps; `state` notices a stuck run; `policy` says what may be done; `events` tell
watchers (live page, video) what happened; `queries` are the one-off `locate`/`ask` calls.
"""
