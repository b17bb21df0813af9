//! The LaViT losses against PyTorch (`tests/fixtures/make_loss_fixture.py`) and a finite-
//! difference check of each term's gradient.

use burn::prelude::*;
use lavit_core::io::tensors::read_safetensors;
use lavit_core::lavit::losses::{cross_entropy, trajectory_kl, vtop_loss};
use lavit_core::lavit::targets::trajectory_targets;
use lavit_core::util::{tensor_from, to_vec_f32};
use lavit_tests::{assert_close, fixture};

struct Fixture {
    t: std::collections::BTreeMap<String, lavit_core::io::tensors::HostTensor>,
}

impl Fixture {
    fn load() -> Self {
        Self {
            t: read_safetensors(&fixture("losses.safetensors")).unwrap(),
        }
    }
    fn f(&self, k: &str) -> (Vec<f32>, Vec<usize>) {
        (self.t[k].to_f32(), self.t[k].shape().to_vec())
    }
    fn scalar(&self, k: &str) -> f32 {
        self.t[k].to_f32()[0]
    }
    fn meta(&self) -> Vec<usize> {
        self.t["meta"]
            .to_i64()
            .iter()
            .map(|&v| v as usize)
            .collect()
    }
    /// The trajectory targets computed by our pipeline from the fixture's teacher maps.
    fn our_targets(&self) -> Vec<f32> {
        let m = self.meta();
        let (traj, shape) = self.f("traj");
        let steps: Vec<Vec<f32>> = traj.chunks(shape[1]).map(|c| c.to_vec()).collect();
        trajectory_targets(
            &steps,
            (m[1], m[2]),
            (m[3], m[4]),
            m[0],
            lavit_core::lavit::targets::TopK::Count(m[5]),
        )
        .into_iter()
        .flatten()
        .collect()
    }
}

fn t2(data: Vec<f32>, shape: &[usize], device: &Device) -> Tensor<2> {
    tensor_from(data, [shape[0], shape[1]], device)
}

#[test]
fn trajectory_targets_match_pytorch_interpolate() {
    let fx = Fixture::load();
    assert_close("targets", &fx.our_targets(), &fx.f("traj_target").0, 1e-5);
}

#[test]
fn loss_values_match_pytorch() {
    let fx = Fixture::load();
    let device = lavit_backends::select("cpu", 0).unwrap();
    let (logits, ls) = fx.f("logits");
    let targets: Vec<i64> = fx.t["targets"].to_i64();
    let tg =
        Tensor::<1, Int>::from_data(TensorData::new(targets.clone(), [targets.len()]), &device);
    let ce = cross_entropy(t2(logits, &ls, &device), tg).into_scalar::<f32>();
    assert_close("L_ce", &[ce], &[fx.scalar("l_ce")], 1e-5);

    let (pred, ps) = fx.f("pred");
    let (vtop, vs) = fx.f("vtop");
    let mean: Vec<f32> = (0..vs[1])
        .map(|j| (0..vs[0]).map(|i| vtop[i * vs[1] + j]).sum::<f32>() / vs[0] as f32)
        .collect();
    let lv =
        vtop_loss(t2(pred, &ps, &device), tensor_from(mean, [vs[1]], &device)).into_scalar::<f32>();
    assert_close("L_vtop", &[lv], &[fx.scalar("l_vtop")], 1e-5);

    let (scores, ss) = fx.f("scores");
    let target = fx.our_targets();
    let lt = trajectory_kl(t2(scores, &ss, &device), t2(target, &ss, &device)).into_scalar::<f32>();
    assert_close("L_traj", &[lt], &[fx.scalar("l_traj")], 1e-5);
}

/// Central finite differences of `f` at `x` against the autodiff gradient.
fn check_grad(name: &str, x: Vec<f32>, shape: &[usize], f: &dyn Fn(Tensor<2>) -> Tensor<1>) {
    let dev = lavit_backends::select("cpu", 0).unwrap();
    let ad = dev.clone().autodiff();
    let xt = t2(x.clone(), shape, &ad).require_grad();
    let loss = f(xt.clone());
    let grads = loss.backward();
    let g = to_vec_f32(xt.grad(&grads).expect("gradient"));
    let eps = 3e-3f32;
    let mut worst = 0f32;
    for i in 0..x.len() {
        let eval = |delta: f32| {
            let mut y = x.clone();
            y[i] += delta;
            f(t2(y, shape, &dev)).into_scalar::<f32>()
        };
        let fd = (eval(eps) - eval(-eps)) / (2.0 * eps);
        let err = (fd - g[i]).abs() / (1e-2 + fd.abs().max(g[i].abs()));
        worst = worst.max(err);
        assert!(
            err < 2e-2,
            "{name}: d/dx[{i}] autodiff {} vs finite difference {fd}",
            g[i]
        );
    }
    assert!(
        g.iter().any(|v| v.abs() > 1e-4),
        "{name}: gradient is all zero"
    );
    eprintln!("{name}: worst relative gradient error {worst:e}");
}

#[test]
fn gradients_pass_finite_differences() {
    let fx = Fixture::load();
    let (logits, ls) = fx.f("logits");
    let targets: Vec<i64> = fx.t["targets"].to_i64();
    check_grad("L_ce", logits, &ls, &|x| {
        let d = x.device();
        let tg = Tensor::<1, Int>::from_data(TensorData::new(targets.clone(), [targets.len()]), &d);
        cross_entropy(x, tg)
    });

    let (pred, ps) = fx.f("pred");
    let (vtop, vs) = fx.f("vtop");
    let mean: Vec<f32> = (0..vs[1])
        .map(|j| (0..vs[0]).map(|i| vtop[i * vs[1] + j]).sum::<f32>() / vs[0] as f32)
        .collect();
    check_grad("L_vtop", pred, &ps, &|x| {
        let d = x.device();
        vtop_loss(x, tensor_from(mean.clone(), [mean.len()], &d))
    });

    let (scores, ss) = fx.f("scores");
    let target = fx.our_targets();
    check_grad("L_traj", scores, &ss, &|x| {
        let d = x.device();
        trajectory_kl(x, t2(target.clone(), &ss, &d))
    });
}

/// `--traj-grad detach` stops `L_traj`'s gradient at the student's image-token states: with
/// `detach` they get no gradient at all (grad is none) while the latent states and the head
/// still learn; with `image` their gradient is there and equals finite differences.
#[test]
fn detach_stops_the_trajectory_gradient_at_the_image_states() {
    use lavit_core::lavit::heads::{HeadStates, TrajScale, TrajectoryHead};
    use lavit_core::lavit::losses::{TrajGrad, trajectory_loss};
    use lavit_core::model::init::SeededInit;
    let (k, n, d) = (2, 5, 6);
    let dev = lavit_backends::select("cpu", 0).unwrap();
    let ad = dev.clone().autodiff();
    let vals = |len: usize, seed: u32| -> Vec<f32> {
        (0..len)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000)
            .map(|v| v as f32 / 500.0 - 1.0)
            .collect()
    };
    let (lat, img) = (vals(k * d, 7), vals(n * d, 11));
    let target: Vec<f32> = vec![0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.8, 0.0];
    let head_on = |device: &Device| {
        TrajectoryHead::new(
            d,
            TrajScale::InvSqrtD,
            HeadStates::PostNorm,
            &mut SeededInit::new(3),
            device,
        )
    };
    for grad in [TrajGrad::Image, TrajGrad::Detach] {
        let head = head_on(&dev).train();
        let h_lat = t2(lat.clone(), &[k, d], &ad).require_grad();
        let h_img = t2(img.clone(), &[n, d], &ad).require_grad();
        let loss = trajectory_loss(
            &head,
            h_lat.clone(),
            h_img.clone(),
            t2(target.clone(), &[k, n], &ad),
            grad,
        );
        let grads = loss.backward();
        let g_lat = h_lat.grad(&grads).map(to_vec_f32);
        let g_img = h_img.grad(&grads).map(to_vec_f32);
        assert!(
            g_lat.is_some_and(|g| g.iter().any(|v| v.abs() > 1e-5)),
            "{grad:?}: the latent states must still learn"
        );
        match grad {
            TrajGrad::Detach => assert!(
                g_img.is_none_or(|g| g.iter().all(|v| *v == 0.0)),
                "detach: gradient reached the image states"
            ),
            TrajGrad::Image => {
                let g = g_img.expect("image: the image states get a gradient");
                let head_plain = head_on(&dev);
                let f = |y: Vec<f32>| {
                    trajectory_loss(
                        &head_plain,
                        t2(lat.clone(), &[k, d], &dev),
                        t2(y, &[n, d], &dev),
                        t2(target.clone(), &[k, n], &dev),
                        TrajGrad::Image,
                    )
                    .into_scalar::<f32>()
                };
                let eps = 3e-3f32;
                for i in 0..img.len() {
                    let (mut a, mut b) = (img.clone(), img.clone());
                    a[i] += eps;
                    b[i] -= eps;
                    let fd = (f(a) - f(b)) / (2.0 * eps);
                    assert!(
                        (fd - g[i]).abs() < 2e-2 * (1e-2 + fd.abs().max(g[i].abs())),
                        "image: d/dh_img[{i}] autodiff {} vs finite difference {fd}",
                        g[i]
                    );
                }
                assert!(g.iter().any(|v| v.abs() > 1e-4));
            }
        }
    }
}
