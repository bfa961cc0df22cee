"""Pruning of BasicVSR-family networks (installed as ``vsrapp_pruning``): four methods side by side behind one
interface (:class:`vsrapp_pruning.method.PruningMethod`: :mod:`vsrapp_pruning.ssl`, :mod:`vsrapp_pruning.gassl`,
:mod:`vsrapp_pruning.nm`, :mod:`vsrapp_pruning.issp`), one training loop (:func:`vsrapp_pruning.train.train_method`)
and its data (:mod:`vsrapp_pruning.data`, :mod:`vsrapp_pruning.distill`'s teacher caches); the application is
reached only through :mod:`vsrapp_pruning.zoo`.

SSL (Xia et al., CVPR 2023; see docs in ``shared/docs/ssl.md``) is made of these parts, which
:class:`vsrapp_pruning.ssl.Ssl` puts in order:

1. :mod:`vsrapp_pruning.gates` - learnable per-filter scales on a dense model (``add_gates``);
2. :mod:`vsrapp_pruning.selection` - folded-filter-L1 importance, global selection (``select_global``);
3. :mod:`vsrapp_pruning.regularizer` - growing L2 on the marked scales (``GrowingL2.penalty``);
4. :mod:`vsrapp_pruning.plan` - kept-index plans (``plan_from_masks``), what :mod:`vsrapp_models.slim` builds from;
5. :mod:`vsrapp_pruning.export` - fold, slice and save safetensors + plan + meta (``export_slim``);
6. :mod:`vsrapp_pruning.losses` - Charbonnier and the Temporal Finetuning hidden-state term (``TemporalFinetuneLoss``).

A trainer's sparsity phase, in short::

    gated = add_gates(dense)
    marked = select_global(importance_scores(gated), ratio=0.5)
    reg = GrowingL2(marked)                      # official schedule: +1e-4 every 5 its up to 0.1
    loss = charbonnier_loss(gated(lrs), gts) + reg.penalty(gated, it)
    ...
    plan = plan_from_masks(gated, select_global(importance_scores(gated), 0.5))
    export_slim(gated, plan, out_dir, meta={"ratio": 0.5, "teacher": ..., "recipe": ...})
"""
