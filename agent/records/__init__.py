"""What a run leaves behind: step records, the trajectory (jsonl + screenshots), the HTML report,
replay, the action cache, run folders, and keeping secrets out of all of them.
"""
