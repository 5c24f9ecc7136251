"""HTTP serving pieces the model server and the gateway share (a leaf: it imports nothing
else of inferplane)."""
