"""The names the data-flow analysis knows by kind: methods that only read, that write, that
hand out a part, calls that return something new, something shared, or change in place."""

from __future__ import annotations

import builtins

# Methods that read an object without changing it; calling anything else on `x` counts as
# changing `x` (the issue asks to be conservative, and these keep common code from handing on
# large values, or making parallel branches look like they both change a frame).
READ_ONLY_METHODS = frozenset(
    [
        "head",
        "tail",
        "describe",
        "info",
        "copy",
        "count",
        "sum",
        "mean",
        "median",
        "std",
        "var",
        "min",
        "max",
        "idxmin",
        "idxmax",
        "nunique",
        "unique",
        "value_counts",
        "groupby",
        "merge",
        "query",
        "astype",
        "to_numpy",
        "tolist",
        "to_list",
        "to_dict",
        "items",
        "keys",
        "values",
        "get",
        "index",
        "predict",
        "predict_proba",
        "predict_log_proba",
        "decision_function",
        "score",
        "transform",
        "get_params",
        "isna",
        "isnull",
        "notna",
        "notnull",
        "any",
        "all",
        "round",
        "reshape",
        "ravel",
        "flatten",
        "argmax",
        "argmin",
        "dot",
        "startswith",
        "endswith",
        "format",
        "lower",
        "upper",
        "strip",
        "split",
        "join",
        "replace",
        "find",
        "corr",
        "cov",
        "sample",
        "select_dtypes",
        "filter",
        "drop_duplicates",
        "dropna",
        "fillna",
        "rename",
        "drop",
        "reset_index",
        "set_index",
        "sort_values",
        "sort_index",
        "apply",
        "map",
        "agg",
        "aggregate",
        "plot",
        "hist",
        "show",
        "evaluate",
        "item",
        "numpy",
        "detach",
        "cpu",
        "size",
        "dim",
        "numel",
        "backward",
        "iterrows",
        "itertuples",
        "isin",
        "cumsum",
        "shift",
        "diff",
        "abs",
        "duplicated",
    ]
)
# Calls that change module state which does not travel between steps (each step starts fresh).
SEED_CALLS = frozenset({"seed", "manual_seed", "set_seed", "set_random_seed"})
WRITE_METHODS = frozenset(
    [
        "to_csv",
        "to_parquet",
        "to_json",
        "to_pickle",
        "to_feather",
        "to_excel",
        "to_hdf",
        "save",
        "savefig",
        "savez",
        "dump",
        "write_text",
        "write_bytes",
        "tofile",
    ]
)
# Methods whose result is a part of the object they are called on (a change of the result is a
# change of that object), although they do not change it themselves.
PART_METHODS = frozenset(["get", "values", "items", "keys", "setdefault", "pop", "popitem"])
# Container methods that put their argument into the object (`append`) or its elements (`extend`).
ADD_METHODS = frozenset(["append", "add", "insert", "setdefault", "appendleft"])
EXTEND_METHODS = frozenset(["extend", "update", "extendleft"])
# Functions known to return a new object, by the name they are called with (`pd.concat` and
# `concat` alike): a change of what they return changes no other name. Calls through a module
# (`np.log(x)`) and constructors (`StandardScaler()`) are taken to return new objects as well.
FRESH_CALLS = frozenset(
    [
        "abs",
        "array",
        "bool",
        "bytes",
        "concat",
        "concatenate",
        "cross_val_score",
        "cross_validate",
        "cut",
        "deepcopy",
        "divmod",
        "empty",
        "exp",
        "float",
        "format",
        "full",
        "genfromtxt",
        "get_dummies",
        "hash",
        "hstack",
        "id",
        "input",
        "int",
        "isinstance",
        "len",
        "linspace",
        "load",
        "loadtxt",
        "log",
        "log1p",
        "make_blobs",
        "make_classification",
        "make_regression",
        "merge",
        "ones",
        "ones_like",
        "open",
        "permutation",
        "pow",
        "print",
        "qcut",
        "randint",
        "randn",
        "range",
        "read_csv",
        "read_excel",
        "read_feather",
        "read_hdf",
        "read_json",
        "read_parquet",
        "read_pickle",
        "read_sql",
        "read_table",
        "repr",
        "round",
        "sqrt",
        "stack",
        "str",
        "sum",
        "tensor",
        "to_datetime",
        "to_numeric",
        "train_test_split",
        "type",
        "vstack",
        "where",
        "zeros",
        "zeros_like",
    ]
)
# Functions that return their (first) argument or a view of it.
SHARING_CALLS = frozenset(
    [
        "as_tensor",
        "memoryview",
        "asanyarray",
        "asarray",
        "ascontiguousarray",
        "asfortranarray",
        "atleast_1d",
        "atleast_2d",
        "atleast_3d",
        "from_numpy",
        "getattr",
        "vars",
    ]
)
# Builtins that return one of their arguments, or an element of their one argument.
PICK_CALLS = frozenset(["max", "min", "next"])
# Builtins (and copy.copy) that make a new container of their argument's elements.
CONTAINER_CALLS = frozenset(
    [
        "copy",
        "dict",
        "enumerate",
        "filter",
        "frozenset",
        "iter",
        "list",
        "reversed",
        "set",
        "sorted",
        "tuple",
        "zip",
    ]
)
# Functions that change their first argument in place (and any function named like torch's
# in-place ones, `xavier_uniform_(w)`).
IN_PLACE_CALLS = frozenset(
    ["copyto", "delattr", "fill_diagonal", "place", "put", "putmask", "setattr", "shuffle"]
)
# Python's builtins return new objects, but for the ones in the lists above.
PLAIN_BUILTINS = frozenset(dir(builtins)) - SHARING_CALLS - PICK_CALLS - CONTAINER_CALLS
