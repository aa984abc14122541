"""The system under test: the reference speculative sampler (PyTorch).

Chains, the reflection coupling, noise sources, the speculative sampler, drafters, the built-in problems as
torch models, mutants (known-broken samplers) and the diffusers adapter. Nothing here imports
:mod:`specverify.harness`; the harness judges this package only through the door, :mod:`specverify.bridge`.
"""
