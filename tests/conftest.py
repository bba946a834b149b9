"""Strict test settings: float64 everywhere, warnings are errors (pyproject).

One CPU device per test process: pytest-xdist already puts a worker on every core, so
chains spread over several host devices would only compete for the same cores (and each
program would be compiled once per device).  Tests of parallel chains start fresh
interpreters with ``FPL_HOST_DEVICES`` set (tests/runtime/test_parallel_chains.py)."""

import os

os.environ.setdefault("FPL_HOST_DEVICES", "1")

#: XLA's LLVM optimisation level for the programs the tests compile.  The suite is
#: compile-bound (most tests compile a model and run it for a few hundred iterations), and
#: at level 0 XLA compiles in ~2/3 of the CPU time of its default level 2 (measured,
#: 2026-11-30, load ~7: a guide page, two posteriordb runs and an SBC row 122 s -> 81 s CPU;
#: the distributions' samplers 200 s -> 86 s) while the compiled programs compute the same
#: IEEE operations (no fast-math at either level), only slower.  Users' programs keep
#: XLA's default, and so do fresh interpreters that tests start without ``XLA_FLAGS``
#: (the platform's flags, sharded data; parallel chains keep this level).  ``XLA_FLAGS``
#: naming the flag wins (``--xla_backend_optimization_level=2``: the default level).
TEST_XLA_FLAG = "--xla_backend_optimization_level"
if TEST_XLA_FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAG}=0".strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)


import pytest  # noqa: E402

#: What plain ``pytest`` (the quick suite, README) leaves to the whole suite (``pytest -m
#: "slow or not slow"``, run by .ci/run): files where every test samples, trains or starts
#: fresh interpreters, and single tests that took over ~5 s on 2 cores (pytest
#: --durations, 2026-11-29: together 2/3 of the quick suite's 15 minutes).  End-to-end
#: sampling stays in the quick suite through test_cli's and test_model's sample tests.
FULL_SUITE_FILES = (
    "tests/examples/",
    "tests/runtime/test_parallel_chains.py",
    "tests/runtime/test_sharded_data.py",
    "tests/compiler/test_data_lets.py",
    "tests/compiler/test_nodes_everywhere.py",
)
FULL_SUITE_TESTS = frozenset(
    {
        "tests/compiler/test_compiled.py::test_blackjax_nuts_samples_a_compiled_model",
        "tests/compiler/test_compiled.py::test_gradient_hessian_and_hvp_against_finite_differences",
        "tests/compiler/test_compiled.py::test_log_density_matches_the_constrained_route",
        "tests/compiler/test_implicit.py::test_bilevel_program",
        "tests/compiler/test_implicit.py::test_deq_program",
        "tests/compiler/test_implicit.py::test_large_unknown_uses_matrix_free_solves",
        "tests/compiler/test_implicit.py::test_matches_unrolled_and_approximate_modes",
        "tests/compiler/test_implicit.py::test_nested_nodes",
        "tests/compiler/test_implicit.py::test_singular_tangent_is_nan_not_wrong",
        "tests/compiler/test_implicit.py::test_value_gradient_and_hessian_against_finite_differences",
        "tests/compiler/test_implicit.py::test_vmap_over_params",
        "tests/compiler/test_implicit_affine.py::test_affine_fix_gives_the_closed_form_in_one_step",
        "tests/compiler/test_pointwise.py::test_entries_sum_to_the_likelihood",
        "tests/runtime/test_adaptation.py::test_low_rank_recovers_a_correlated_gaussian",
        "tests/runtime/test_adaptation.py::test_only_valid_rows_count",
        "tests/runtime/test_checkpoint.py::test_a_changed_function_body_is_another_model",
        "tests/runtime/test_checkpoint.py::test_cli_sample_ctrl_c_prints_the_resume_command",
        "tests/runtime/test_checkpoint.py::test_sample_resumed_equals_uninterrupted",
        "tests/runtime/test_checkpoint.py::test_a_short_last_chunk_idles_in_the_one_chunk_program",
        "tests/runtime/test_diagnose.py::test_cli_output_and_exit_codes",
        "tests/runtime/test_diagnose.py::test_spectral_radius_of_a_linear_fix_is_exact",
        "tests/runtime/test_diagnose_ift.py::test_monotone_deq_is_well_posed_with_picards_note",
        "tests/runtime/test_io.py::test_load_fit_gives_back_a_fit",
        "tests/runtime/test_laplace.py::test_draws_follow_the_gaussian",
        "tests/runtime/test_laplace.py::test_hessian_through_a_fixed_point",
        "tests/runtime/test_model.py::test_dependent_bounds_are_recomputed_per_draw",
        "tests/runtime/test_model.py::test_nonconverged_solves_are_counted_in_nuts",
        "tests/runtime/test_model.py::test_same_seed_same_draws",
        "tests/runtime/test_model.py::test_truncated_prior_is_half_normal",
        "tests/runtime/test_optimize.py::test_lbfgs_stops_at_convergence_and_says_so",
        "tests/runtime/test_pathfinder.py::test_draws_start_nuts_chains",
        "tests/runtime/test_pathfinder.py::test_recovers_a_gaussian_posterior",
        "tests/runtime/test_pathfinder.py::test_settings_are_validated_once_for_api_and_cli",
        "tests/runtime/test_stuck_chains.py::test_a_stranded_chain_names_the_ill_posed_implicit_node",
        "tests/runtime/test_stuck_chains.py::test_a_stranded_chain_stops_early_with_a_coded_error",
        "tests/runtime/test_stuck_chains.py::test_tiny_but_smooth_posteriors_are_not_stuck",
        "tests/runtime/test_vi.py::test_full_rank_guide_recovers_the_posterior",
        "tests/runtime/test_vi.py::test_mean_field_guide_gets_the_mean_and_the_conditional_spread",
        "tests/stdlib/test_distributions_table.py::test_lkj_normalised_for_two_by_two",
        # session 5 (measured at load ~20, so ~5x the quiet figure): diffrax compiles
        "tests/stdlib/test_ode.py::test_inside_map_shapes_and_the_failure_path",
        "tests/stdlib/test_ode.py::test_closure_gradient_and_hessian_against_the_closed_form",
        "tests/stdlib/test_ode.py::test_lotka_volterra_rk45_values_and_sensitivities",
        "tests/stdlib/test_ode.py::test_failed_solve_poisons_the_gradient",
        "tests/runtime/test_nuts_tree.py::"
        "test_kernel_samples_a_gaussian_with_shorter_trajectories_than_blackjax",
        "tests/stdlib/test_distributions_table.py::test_log_prob_shape_rule_matches_the_implementation",
        # session 6 (each over ~15 s at load ~9; the quick suite keeps a cheaper test of
        # the same feature: ODE failures in test_ode, eigenvectors in the functions table,
        # the stuck-chain guard's stop, the CLI's VI through test_vi's quick tests)
        "tests/stdlib/test_ode_optimize.py::test_ode_out_of_steps_everywhere_is_E0402_at_the_ode",
        "tests/posteriordb/test_unreferenced.py::test_kronecker_gp_gradient_in_the_kernel_parameters",
        "tests/runtime/test_stuck_chains.py::test_a_stranded_chain_reports_its_implicit_nodes_diagnosis",
        "tests/runtime/test_vi.py::test_cli_vi_fits_weights_jointly",
        "tests/compiler/test_compiled.py::test_functions_are_pure_under_jit_and_vmap",
        "tests/stdlib/test_newton_argmin.py::test_implicit_derivative_through_newton",
    }
)


#: The whole suite's longest tests (CI, 2 cores, 2026-11-30: 343, 104 and 47 s), run first.
#: ``--dist worksteal`` hands each worker a contiguous part of the list and lets an idle one
#: take tests from the other, so a long test at the end of a part runs while the other
#: worker idles: with one_comp there, the whole suite took 26.7 minutes. These have no
#: fixtures, so moving them costs no extra setup.
LONGEST_FIRST = tuple(
    f"tests/posteriordb/test_posteriordb.py::test_posterior_matches_reference[{name}]"
    for name in (
        "one_comp_mm_elim_abs-one_comp_mm_elim_abs",
        "hudson_lynx_hare-lotka_volterra",
        "gp_pois_regr-gp_pois_regr",
    )
)


def pytest_collection_modifyitems(items):
    for item in items:
        base = item.nodeid.split("[", 1)[0]
        if item.nodeid.startswith(FULL_SUITE_FILES) or base in FULL_SUITE_TESTS:
            item.add_marker(pytest.mark.slow)
    rank = {nodeid: i for i, nodeid in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid, len(rank)))  # stable: the rest keep order
