"""The desk: a sandbox with its apps started and ready, pools of them, and waiting for the screen to settle.

What every door needs to bring a desktop up (`session.Session`, `pool`), launch a person's app command
(`apps`), prepare office profiles (`office`), and tell when an action's effect is on the screen (`settle`).
"""
