"""The run spec: every setting of a run, layered flags > environment > file > defaults, and the one reader
of user files (suites, workflows, configs) with line numbers in its errors.
"""
