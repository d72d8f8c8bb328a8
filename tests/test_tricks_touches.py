"""A trick's ``touches`` is derived from the hooks it overrides and checked, at registration and at build."""
import pytest
import torch
from conftest import tiny_nets

import gantricks as gt
from gantricks.errors import ConfigError
from gantricks.registry import Registry, tricks
from gantricks.tricks.base import AFTER_STEP, D_ARCH, D_LOSS, G_LOSS, HOOK_TOUCHES, TARGETS, Trick, prepare_trick
from gantricks.tricks.common import register_trick


def scratch_registry() -> Registry:
    """A trick registry like the public one, without adding to it."""
    reg = Registry("trick")
    reg.prepare = tricks.prepare
    return reg


class Undeclared(Trick):
    """A D penalty that forgets to say it touches D's loss."""

    name = "undeclared"

    def d_terms(self, ctx):
        return {"zero": ctx.real_logits.sum() * 0}


def test_overridden_hooks_are_added_to_touches():
    assert tricks.prepare is prepare_trick

    class Several(Trick):
        touches = (D_ARCH,)

        def setup(self, gan):
            pass

        def targets(self, real_t, fake_t, gan):
            return real_t, fake_t

        def g_terms(self, ctx):
            return {}

        def after_step(self, gan):
            pass

    reg = scratch_registry()
    reg.register("several", paper="p", summary="s")(Several)
    assert Several.name == "several"         # registration names the class
    assert Several.touches == (D_ARCH, TARGETS, G_LOSS, AFTER_STEP)
    assert reg.get("several").touches == "D architecture, targets, G loss, after step"


def test_an_undeclared_d_term_is_derived_so_madgan_refuses_it():
    """Before, MAD-GAN read the empty ``touches`` and built, then never ran the trick's D term."""
    G, D = tiny_nets(outputs=3)
    with pytest.raises(ConfigError, match="cannot use trick 'undeclared' \\(it changes the D loss\\)"):
        gt.GAN(G, D, z_dim=2, scheme="madgan:generators=2", tricks=[Undeclared()])
    assert Undeclared().touches == ()          # the class is left as written; the instance in the GAN gets it
    G, D = tiny_nets()
    gan = gt.GAN(G, D, z_dim=2, tricks=[Undeclared()])
    assert gan.tricks[0].touches == (D_LOSS,)
    assert "zero" in gan.step(torch.randn(8, 2))


@pytest.mark.parametrize("touches, message", [
    (("D los",), "declares touches 'D los', which is none of: D architecture, G architecture"),
    ("D loss", "must be a tuple of strings"),
    ((D_LOSS, TARGETS), "declares touches 'targets' but does not define targets\\(\\)"),
])
def test_a_misspelt_or_false_entry_is_refused_at_registration(touches, message):
    cls = type("Bad", (Undeclared,), {"touches": touches})
    with pytest.raises(ConfigError, match=message):
        scratch_registry().register("bad", paper="p", summary="s")(cls)
    G, D = tiny_nets()
    with pytest.raises(ConfigError, match=message):          # handed to the GAN directly
        gt.GAN(G, D, z_dim=2, tricks=[cls()])


def test_a_misspelt_hook_is_refused():
    class Typo(Trick):
        touches = (D_LOSS,)

        def d_term(self, ctx):          # not d_terms: it would never run
            return {"penalty": ctx.real_logits.sum()}

    with pytest.raises(ConfigError, match="'typo' declares touches 'D loss' but does not define d_terms\\(\\); "
                                          "is the method misspelt"):
        register_trick("typo", paper="p", summary="s")(Typo)
    assert "typo" not in tricks


def test_replacing_g_loss_without_g_terms_is_refused():
    class NoGTerms(Trick):
        name = "no-g-terms"
        replaces_g_loss = True

    G, D = tiny_nets()
    with pytest.raises(ConfigError, match="'no-g-terms' sets replaces_g_loss but defines no g_terms\\(\\)"):
        gt.GAN(G, D, z_dim=2, tricks=[NoGTerms()])


def test_a_nameless_trick_object_is_refused():
    G, D = tiny_nets()
    with pytest.raises(ConfigError, match="has no name"):
        gt.GAN(G, D, z_dim=2, tricks=[type("Nameless", (Undeclared,), {"name": ""})()])


@pytest.mark.parametrize("entry", list(tricks), ids=lambda e: e.name)
def test_every_registered_trick_declares_what_its_hooks_touch(entry):
    cls = entry.factory
    assert cls.name == entry.name
    for hook, touch in HOOK_TOUCHES.items():
        assert (getattr(cls, hook) is not getattr(Trick, hook)) == (touch in cls.touches), (entry.name, hook)
