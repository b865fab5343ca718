"""Make the in-tree collection importable as ansible_collections.gpuinfer.serving in tests."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "collections"))
