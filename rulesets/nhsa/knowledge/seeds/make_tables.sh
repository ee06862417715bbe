#!/bin/sh
# 由本目录中按国家批次版式写的示例种子文件，用 claimaudit kb import 生成 ../ 下的种子知识表
# （TABLE.csv 与 TABLE.table.rules）。正式批次到来时，对正式文件执行同样的命令（同一个 -o 路径）即可替换，
# 规则文件不用改。
# Regenerates the seed tables in ../ (TABLE.csv + TABLE.table.rules) from the batch-shaped seed files
# here, exactly as an official batch would be imported. Run from anywhere: sh make_tables.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$(dirname "$here")
CLAIMAUDIT=${CLAIMAUDIT:-claimaudit}
FROM=2026-01-01

imp() {  # kind seed-file batch-number
    name=${2%.csv}
    "$CLAIMAUDIT" kb import --kind "$1" "$here/$2" -o "$out/$name.csv" \
        --batch "国家医保局两库2025版第$3批(示例种子)" --effective-from "$FROM"
    rejects="$out/$name.rejects.csv"
    if [ "$(wc -l < "$rejects")" -gt 1 ]; then echo "rejects in $rejects" >&2; exit 1; fi
    rm -f "$rejects"
}

for t in drug_gend drug_newborn drug_child drug_child_forbidden drug_elderly drug_work_injury \
         drug_maternity drug_med_type drug_hosp_lv drug_course; do
    imp drug_restriction "$t.csv" 1
done
for t in item_gend item_age consumable_gend; do
    imp item_restriction "$t.csv" 2
done
imp duplicate_charge item_dup_charge.csv 3
imp frequency_limit item_frequency.csv 4
imp cycle_limit item_cycle.csv 5
imp course_limit item_course.csv 6
