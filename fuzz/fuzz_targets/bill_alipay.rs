//! Alipay trade bills: the ZIP as downloaded (entry names in GBK, the detail CSV streamed out
//! of its entry), the GBK CSV reader itself, and the reconciliation reader on top (typed rows
//! to bill lines, the bill's own row counts checked). Random bytes are rarely a ZIP, so the
//! input is also stored as the detail entry of a ZIP we write.
#![no_main]

use std::io::{Cursor, Write};

use libfuzzer_sys::fuzz_target;
use paybridge_alipay::bill::{BillArchive, BillReader};
use paybridge_reconcile::{BillBytes, BillFile};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

fn read_all<R: std::io::Read>(mut reader: BillReader<R>) {
    for record in reader.by_ref() {
        if let Ok(r) = record {
            assert!(!r.kind.as_str().is_empty());
        }
    }
    let _ = reader.summary();
    let _ = reader.metadata();
}

fn reconcile(zip: Vec<u8>) {
    let _ = BillFile::AlipayZip(BillBytes::Memory(zip)).for_each_line(|_| Ok(()));
}

fn stored_zip(csv: &[u8]) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    w.start_file("20880000000000000156_20240101_业务明细.csv", opts)
        .expect("start entry");
    w.write_all(csv).expect("write entry");
    w.finish().expect("finish zip").into_inner()
}

fuzz_target!(|data: &[u8]| {
    // As the downloaded ZIP.
    if let Ok(mut archive) = BillArchive::new(data.to_vec()) {
        let _ = archive.entry_names();
        if let Ok(reader) = archive.detail() {
            read_all(reader);
        }
    }
    reconcile(data.to_vec());
    // As the detail CSV.
    read_all(BillReader::new(data));
    reconcile(stored_zip(data));
});
