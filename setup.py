"""Maps the repository's top-level folders to subpackages of `deskpilot`.

The doors (cli, mcp, live, eval, workflow, record, demo, the pytest plugin) live in
`deskpilot/` itself; the five folders of the design card sit beside it.

pyproject.toml holds the metadata; this file only lists the packages, so a
new sub-package (a folder with an __init__.py) is picked up without edits.
"""

from setuptools import find_packages, setup

TOP = ["agent", "perception", "actions", "model_backend", "sandbox"]
package_dir = {"deskpilot": "deskpilot", **{f"deskpilot.{t}": t for t in TOP}}
packages = ["deskpilot"] + [f"deskpilot.{sub}" for sub in find_packages("deskpilot")]  # the doors
for top in TOP:
    packages.append(f"deskpilot.{top}")
    packages += [f"deskpilot.{top}.{sub}" for sub in find_packages(top)]

setup(
    package_dir=package_dir,
    packages=packages,
    package_data={"": ["py.typed", "*.j2", "*.html", "*.json", "*.css", "*.js", "*.yaml", "*.csv",
                       "*.png", "templates/*", "static/*", "data/*"]},
    include_package_data=False,
)
