//! WeChat Pay trade bills: the text table reader (BOM, back-quoted values, summary block),
//! typed records and summaries, the reconciliation reader on top, the APIv2 download answer
//! (text or XML error) and the APIv3 download check (gunzip, SHA-1).
#![no_main]

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use libfuzzer_sys::fuzz_target;
use paybridge_crypto::sha1_hex;
use paybridge_reconcile::{BillBytes, BillFile};
use paybridge_wechatpay::bill::{
    parse_bill_amount, parse_bill_count, BillReader, TradeBillRecord, TradeBillSummary,
};
use paybridge_wechatpay::v2::api::parse_download_bill;
use paybridge_wechatpay::v3::api::{check_bill, download_path, parse_bill_link, BillLink};

fn read_all(data: &[u8]) {
    let Ok(mut reader) = BillReader::new(data) else {
        return;
    };
    assert!(!reader.columns().is_empty());
    for row in reader.by_ref() {
        let Ok(row) = row else {
            continue;
        };
        assert_eq!(row.values.len(), row.columns().len());
        let _ = TradeBillRecord::from_row(&row);
        for (_, v) in row.pairs() {
            if let Some(f) = parse_bill_amount(v) {
                // Exact: the amount written back with two decimals parses to the same fen.
                assert_eq!(parse_bill_amount(&f.to_yuan()), Some(f), "{v:?}");
            }
            let _ = parse_bill_count(v);
        }
    }
    if let Some(summary) = reader.summary() {
        let _ = TradeBillSummary::from_row(summary);
    }
}

fuzz_target!(|data: &[u8]| {
    read_all(data);
    let _ = BillFile::WechatText(BillBytes::Memory(data.to_vec())).for_each_line(|_| Ok(()));
    let _ = parse_download_bill(data);
    if let Ok(link) = parse_bill_link(data) {
        if let Ok(path) = download_path(&link.download_url) {
            assert!(path.starts_with('/'));
        }
    }

    // APIv3: the input as a downloaded gzip (rarely valid), then gzipped by us.
    let link = BillLink {
        hash_type: "SHA1".into(),
        hash_value: sha1_hex(data),
        download_url: "https://api.mch.weixin.qq.com/v3/billdownload/file?token=x".into(),
    };
    let _ = check_bill(&link, data, true);
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(data).expect("gzip into memory");
    let gz = gz.finish().expect("gzip into memory");
    let text = check_bill(&link, &gz, true).expect("our own gzip of the bill checks");
    assert_eq!(text, data);
    assert_eq!(check_bill(&link, data, false).ok().as_deref(), Some(data));
});
