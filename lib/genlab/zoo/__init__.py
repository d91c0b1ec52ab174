"""The model zoo: the only layer that joins a model with its data, training and evaluation.

One module per family holds its named recipes (``genlab train NAME`` / ``genlab eval NAME``): digit_classifier,
face_regressor, pixelcnn, pixelrnn, dcgan, stylegan (A-F and StyleGAN2), vqvae, vqvae_prior. :mod:`.registry` lists
them by name (imported only when asked for, so ``genlab --help`` stays instant); :mod:`.shipping` trains, ships,
loads and re-evaluates them; :mod:`.supervised` is the training loop the one-network recipes share. A recipe's config
is typed (:class:`~genlab.zoo.registry.RecipeConfig`: the model config dataclass + a frozen training-settings
dataclass); checkpoints and provenance files store its ``as_dict()`` form.

    from genlab.zoo import load_or_train
    G = load_or_train("dcgan_mnist", run, retrain=train_from_scratch)   # shipped checkpoint, or trained now
"""
from genlab.zoo.registry import (RECIPES, Recipe, RecipeConfig, TrainJob, UnknownRecipeError, get_recipe, known_names,
                                 n_params)
from genlab.zoo.shipping import (MetricCheck, eval_main, evaluate_shipped, load_or_train, load_pretrained,
                                 load_seed_run, train_main, train_recipe)

__all__ = ["RECIPES", "Recipe", "RecipeConfig", "TrainJob", "UnknownRecipeError", "get_recipe", "known_names",
           "n_params",
           "MetricCheck", "eval_main", "evaluate_shipped", "load_or_train", "load_pretrained", "load_seed_run",
           "train_main", "train_recipe"]
