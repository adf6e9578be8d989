"""OSWorld's task files on deskpilot's desktops: `deskpilot eval` reads them like a suite.

plan.py: what a task needs beyond a suite task (mapped steps, skip reason);
tasks.py: reading task files, folders and index files into a Suite;
steps.py: OSWorld's set-up steps mapped onto a desk (pyautogui text parsed, never run);
download.py: fetching a missing cache file on the host (only when allowed);
attempt.py: the hooks the eval runner calls for an OSWorld task.
"""
