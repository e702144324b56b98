"""Reference data shared by the numerical tests (kept independent of the loader on purpose).

The 14 cohort studies of Takahashi et al., Neurospine 2023, Table 1 (base case, Lin 2016 at the
midpoint 140/1646), as in data/revision_studies.csv: (study, n, events).
"""

import numpy as np

REVISION_STUDIES = (
    ("chou2014", 843, 14),
    ("hazzard2014", 1395, 142),
    ("hogan2022", 80864, 12130),
    ("kim2022", 1932, 62),
    ("korovessis2013", 86, 2),
    ("li2016", 827, 9),
    ("liang2015", 79225, 8952),
    ("lin2016", 1646, 140),
    ("robinson2008", 102, 2),
    ("segal2018", 2465, 84),
    ("takahashi2019", 109, 4),
    ("walter2012", 173, 3),
    ("yang2020", 14527, 1148),
    ("yang2008", 1523, 21),
)
N = np.array([n for _, n, _ in REVISION_STUDIES])
Y = np.array([y for _, _, y in REVISION_STUDIES])
