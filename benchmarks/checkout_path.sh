# Sourced by the device scripts (benchmarks/gpu_run.sh, pruning/recipes/gpu_distill.sh), which run in a copy of the
# working tree that is not pip-installed. Installed, the top-level folders are imported under their package names
# (pyproject.toml's package-dir: vsrapp_models is models/, vsrapp_pruning is pruning/); links in a temporary folder
# give a bare checkout the same names. checkout_pythonpath prints the PYTHONPATH to use (run from the repo root).
checkout_pythonpath() {
    local links
    links=$(mktemp -d)
    ln -s "$PWD/models" "$links/vsrapp_models"
    ln -s "$PWD/pruning" "$links/vsrapp_pruning"
    echo "$links:$PWD"
}
