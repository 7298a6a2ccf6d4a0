"""Teams sharing one vnode-batch: who belongs to which, their capacity shares and allowlists."""
