//! `alipay.data.dataservice.bill.downloadurl.query`: a short-lived URL to the day's bill ZIP.

use serde::{Deserialize, Serialize};

use super::{to_biz_content, AlipayApi};
use crate::AlipayError;

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

impl AlipayApi for BillDownloadUrlQuery {
    type Response = BillDownloadUrlResponse;

    fn method(&self) -> &str {
        "alipay.data.dataservice.bill.downloadurl.query"
    }

    fn biz_content(&self) -> Result<String, AlipayError> {
        to_biz_content(self)
    }

    fn idempotent(&self) -> bool {
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::api::testutil::{assert_signed, golden, respond, test_config, NOW};
    use crate::api::{parse, prepare};
    use crate::request::CallOptions;

    #[test]
    fn wire_form_and_response() {
        let (config, alipay) = test_config();
        let req = BillDownloadUrlQuery::trade("2026-11-25");
        let signed = prepare(&config, &req, &CallOptions::default(), NOW).unwrap();
        assert_signed(
            &config,
            &signed,
            &golden(
                "alipay.data.dataservice.bill.downloadurl.query",
                r#"{"bill_type":"trade","bill_date":"2026-11-25"}"#,
                "",
                "",
            ),
        );
        let raw = respond(
            &alipay,
            "alipay.data.dataservice.bill.downloadurl.query",
            r#"{"code":"10000","msg":"Success","bill_download_url":"http:\/\/dwbillcenter.alipay.com\/downloadBillFile.resource?bizType=trade&userId=20881234&fileType=csv.zip&bizDates=20261125&downloadFileName=20881234_20261125.csv.zip&fileId=%2Ftrade%2F20881234%2F20261125&timestamp=1795694400&token=abc"}"#,
        );
        let resp = parse(&config, &req, &raw).unwrap();
        assert!(resp
            .bill_download_url
            .starts_with("http://dwbillcenter.alipay.com/downloadBillFile.resource?bizType=trade"));
    }
}
