"""The authors' VAE-GAN graph built in TensorFlow, as the reference of the import tests.

Built from the semantics of github rufinv/VAE-GAN-CelebA (``libs/make_network.py``,
``libs/utils.py``): the same variable scopes and names, shapes and test-time computation, with
``tf.compat.v1`` in a graph of its own. Widths are parameters so that a test can use a reduced
network with the real naming and shape logic (the generator's first feature map has ``n_code``
channels, as theirs). A small discriminator and an Adam optimiser put the variables an import
must leave aside into the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FULL = {"channels": (192, 256, 384, 512, 768), "hidden": 1024, "n_code": 1024,
        "gen_channels": (512, 384, 256, 192)}
REDUCED = {"channels": (12, 16, 24, 32, 48), "hidden": 64, "n_code": 32,
           "gen_channels": (32, 24, 16, 12)}


@dataclass
class TFGraph:
    graph: Any
    sess: Any
    x: Any          # placeholder (N, S, S, 3)
    z: Any          # the posterior sample, fed directly to decode given latents
    z_mu: Any
    g: Any          # generator output (N, S, S, 3)
    is_training: Any
    train_op: Any | None
    saver_v1: Any
    saver_v2: Any

    def restore(self, checkpoint: Path) -> None:
        with self.graph.as_default():
            self.saver_v1.restore(self.sess, str(checkpoint))

    # The authors' batch norm creates the moving-average update outside the cond, so TensorFlow
    # runs it at test time too: each run moves the averages towards the batch's moments. Their
    # scripts restore the checkpoint and run once; so do these (``checkpoint`` restored first).
    def run_mu(self, images: np.ndarray, checkpoint: Path | None = None) -> np.ndarray:
        if checkpoint is not None:
            self.restore(checkpoint)
        return self.sess.run(self.z_mu, {self.x: images, self.is_training: False})

    def run_g(self, latents: np.ndarray, checkpoint: Path | None = None) -> np.ndarray:
        if checkpoint is not None:
            self.restore(checkpoint)
        return self.sess.run(self.g, {self.z: latents, self.is_training: False})


def _bn(tf1, x, is_training, decay=0.9):
    """Batch norm as the authors': moments, their moving averages, global normalisation."""
    with tf1.variable_scope("bn"):
        c = x.get_shape().as_list()[-1]
        beta = tf1.get_variable("beta", [c], initializer=tf1.constant_initializer(0.0))
        gamma = tf1.get_variable("gamma", [c], initializer=tf1.constant_initializer(1.0))
        axes = [0, 1, 2] if len(x.get_shape()) == 4 else [0]
        mean, var = tf1.nn.moments(x, axes, name="moments")
        ema = tf1.train.ExponentialMovingAverage(decay=decay)
        update = ema.apply([mean, var])

        def training():
            with tf1.control_dependencies([update]):
                return tf1.identity(mean), tf1.identity(var)

        m, v = tf1.cond(is_training, training, lambda: (ema.average(mean), ema.average(var)))
        return tf1.nn.batch_norm_with_global_normalization(x, m, v, beta, gamma, 1e-6, True)


def _linear(tf1, x, n_out, name, activation=None):
    if len(x.get_shape()) == 4:
        d = x.get_shape().as_list()
        x = tf1.reshape(x, [-1, d[1] * d[2] * d[3]])
    n_in = x.get_shape().as_list()[1]
    with tf1.variable_scope(name):
        w = tf1.get_variable("W", [n_in, n_out], initializer=tf1.glorot_uniform_initializer())
        b = tf1.get_variable("b", [n_out], initializer=tf1.random_normal_initializer(0, 0.05))
        h = tf1.nn.bias_add(tf1.matmul(x, w), b)
        return activation(h) if activation else h


def build(tf, n_pixels: int = 128, widths: dict | None = None, seed: int = 0,
          optimiser: bool = True, quiet_channels: bool = True) -> TFGraph:
    """Build the graph (random weights; biases non-zero so that they are checked too).

    ``quiet_channels``: a quarter of the channels of one encoder and one generator layer get
    filters 1000 times smaller, as the near-constant channels of a trained network: there the
    batch norm's epsilon matters.
    """
    tf1 = tf.compat.v1
    # TensorFlow 1's control flow (Switch/Merge), which the authors' graph ran on; under the
    # v2 control flow the test-time branch of this cond does not return the moving averages
    tf1.disable_control_flow_v2()
    w = widths or FULL
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(seed)
        is_training = tf1.placeholder(tf.bool, name="istraining")
        x = tf1.placeholder(tf.float32, [None, n_pixels, n_pixels, 3], name="X")
        init = tf1.glorot_uniform_initializer()
        bias = tf1.random_normal_initializer(0, 0.05)
        with tf1.variable_scope("encoder"):
            h = x
            for i, c in enumerate(w["channels"]):
                with tf1.variable_scope(f"layer{i + 1}"):
                    with tf1.variable_scope("conv2d"):
                        k = tf1.get_variable("W", [3, 3, h.get_shape()[-1], c], initializer=init)
                        h = tf1.nn.conv2d(h, k, [1, 2, 2, 1], "SAME")
                        h = tf1.nn.bias_add(h, tf1.get_variable("b", [c], initializer=bias))
                    h = tf.nn.elu(_bn(tf1, h, is_training))
            h = _linear(tf1, h, w["hidden"], "fc")
        with tf1.variable_scope("encoder/variational"):
            z_mu = tf.tanh(_linear(tf1, h, w["n_code"], "mu"))
            z_log_sigma = 0.5 * tf.tanh(_linear(tf1, h, w["n_code"], "log_sigma"))
            eps = tf1.random_normal(tf.stack([tf.shape(h)[0], w["n_code"]]))
            z = z_mu + eps * tf.exp(z_log_sigma)
        base = n_pixels // 32
        with tf1.variable_scope("generator"):
            h = _linear(tf1, z, w["n_code"] * base * base, "fc", tf.nn.elu)
            h = tf1.reshape(h, [-1, base, base, w["n_code"]])
            side = base
            for i, c in enumerate((*w["gen_channels"], 3)):
                side *= 2
                with tf1.variable_scope(f"layer{i + 1}"):
                    with tf1.variable_scope("deconv2d"):
                        k = tf1.get_variable("W", [3, 3, c, h.get_shape()[-1]], initializer=init)
                        h = tf1.nn.conv2d_transpose(
                            h, k, tf.stack([tf.shape(h)[0], side, side, c]), [1, 2, 2, 1], "SAME")
                        h.set_shape([None, side, side, c])
                        h = tf1.nn.bias_add(h, tf1.get_variable("b", [c], initializer=bias))
                    h = tf.nn.elu(_bn(tf1, h, is_training))
            g = h
        train_op = None
        if optimiser:
            with tf1.variable_scope("discriminator"), tf1.variable_scope("layer1"):
                k = tf1.get_variable("W", [3, 3, 3, 8], initializer=init)
                d = tf1.reduce_mean(tf1.nn.conv2d(g, k, [1, 2, 2, 1], "SAME"))
            loss = tf1.reduce_mean(tf1.square(g - x)) + 1e-3 * d
            step = tf1.train.get_or_create_global_step()  # an int64 counter
            train_op = tf1.train.AdamOptimizer(1e-4).minimize(loss, global_step=step)
        sess = tf1.Session(graph=graph)
        sess.run(tf1.global_variables_initializer())
        if quiet_channels:
            for name, axis in (("encoder/layer2/conv2d/W", 3), ("generator/layer3/deconv2d/W", 2)):
                var = [v for v in tf1.global_variables() if v.op.name == name][0]
                value = sess.run(var)
                index = [slice(None)] * 4
                index[axis] = slice(0, value.shape[axis] // 4)
                value[tuple(index)] *= 1e-3
                var.load(value, sess)
        saver_v1 = tf1.train.Saver(write_version=tf1.train.SaverDef.V1)
        saver_v2 = tf1.train.Saver()
    return TFGraph(graph, sess, x, z, z_mu, g, is_training, train_op, saver_v1, saver_v2)


def train_statistics(net: TFGraph, rng: np.random.Generator, steps: int = 4,
                     batch: int = 6, images: np.ndarray | None = None) -> None:
    """A few training-mode steps: batch-norm moving averages (and Adam, if any) update."""
    side = net.x.get_shape().as_list()[1]
    target = net.train_op if net.train_op is not None else net.g
    for _ in range(steps):
        xb = (rng.random((batch, side, side, 3), dtype=np.float32) if images is None
              else images[rng.choice(len(images), batch)])
        net.sess.run(target, {net.x: xb, net.is_training: True})


def save(net: TFGraph, folder: Path) -> tuple[Path, Path]:
    """Save in both formats: the V1 single file and the V2 prefix."""
    folder.mkdir(parents=True, exist_ok=True)
    v1 = folder / "v1.ckpt"
    v2 = folder / "v2.ckpt"
    with net.graph.as_default():
        net.saver_v1.save(net.sess, str(v1), write_meta_graph=False)
        net.saver_v2.save(net.sess, str(v2), write_meta_graph=False)
    return v1, v2


def save_subset(net: TFGraph, tf, path: Path, drop: str | None = None,
                rename: tuple[str, str] | None = None) -> Path:
    """Save a V1 checkpoint without variable ``drop``, or with ``rename = (name, other)``:
    variable ``other``'s value saved under ``name`` (``other`` itself dropped)."""
    tf1 = tf.compat.v1
    with net.graph.as_default():
        variables = {v.op.name: v for v in tf1.global_variables()}
        if drop is not None:
            del variables[drop]
        if rename is not None:
            name, other = rename
            variables[name] = variables.pop(other)
        tf1.train.Saver(variables, write_version=tf1.train.SaverDef.V1).save(
            net.sess, str(path), write_meta_graph=False)
    return path


def authors_imdeprocess(g: np.ndarray) -> np.ndarray:
    """``imdeprocess`` of VAEGAN_latent2image.py as written there: a loop that divides image
    ``i`` by the maximum of the batch as modified so far."""
    g = g.copy()
    for i in range(g.shape[0]):
        g[i] = np.clip(1.0 * g[i] / (g.max()), 0, 1)
    return g


def variable_names(net: TFGraph, tf) -> list[str]:
    """Names of all the graph's (saved) variables."""
    with net.graph.as_default():
        return [v.op.name for v in tf.compat.v1.global_variables()]
