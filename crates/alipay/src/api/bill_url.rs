//! `alipay.data.dataservice.bill.downloadurl.query`: a short-lived URL to the day's bill ZIP.

use serde::{Deserialize, Serialize};

use super::alipay_api;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BillDownloadUrlQuery {
    /// `trade` (business detail) or `signcustomer` (account detail).
    pub bill_type: String,
    /// `yyyy-MM-dd` (or `yyyy-MM` for a month).
    pub bill_date: String,
}

impl BillDownloadUrlQuery {
    pub fn trade(bill_date: impl Into<String>) -> Self {
        BillDownloadUrlQuery {
            bill_type: "trade".into(),
            bill_date: bill_date.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BillDownloadUrlResponse {
    pub bill_download_url: String,
}

alipay_api!(
    BillDownloadUrlQuery,
    "alipay.data.dataservice.bill.downloadurl.query",
    BillDownloadUrlResponse,
    idempotent = true
);

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::api::testutil::{answer, golden, wire};
    use crate::request::CallOptions;

    #[test]
    fn wire_form_and_response() {
        let req = BillDownloadUrlQuery::trade("2026-11-25");
        let biz = r#"{"bill_type":"trade","bill_date":"2026-11-25"}"#;
        let expected = golden(
            "alipay.data.dataservice.bill.downloadurl.query",
            biz,
            "",
            "",
        );
        let (config, alipay, _) = wire(&req, &CallOptions::default(), &expected);
        let resp = answer(&config, &alipay, &req, r#"{"code":"10000","msg":"Success","bill_download_url":"http:\/\/dwbillcenter.alipay.com\/downloadBillFile.resource?bizType=trade&userId=20881234&fileType=csv.zip&bizDates=20261125&downloadFileName=20881234_20261125.csv.zip&fileId=%2Ftrade%2F20881234%2F20261125&timestamp=1795694400&token=abc"}"#).unwrap();
        assert!(resp
            .bill_download_url
            .starts_with("http://dwbillcenter.alipay.com/downloadBillFile.resource?bizType=trade"));
    }
}
