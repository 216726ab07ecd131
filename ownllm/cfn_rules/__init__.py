"""ownllm's own cfn-lint rules: deploy defects that AWS's resource schemas cannot see.

Each rule is one module here (cfn-lint loads every `[A-Za-z1-9]*.py` file of an
`--append-rules` folder, one at a time, so modules import helpers by absolute name and
never relatively). Shared facts live in `_facts.py`, template helpers in `_template.py`:

    cfn-lint --append-rules ownllm/cfn_rules cdk.out/*.template.json
    ownllm lint            # the same over every template in cdk.out and every supported region
"""

from pathlib import Path

RULES_DIR = Path(__file__).resolve().parent
