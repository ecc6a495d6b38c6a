#include "nn/batch_predict.h"

namespace cd {

void predict_all(Classifier& model, std::vector<Prediction>& items, int batch_size, int threads,
                 const std::function<void(const Prediction&)>& done) {
  predict_all(*borrow_as_predictor(model), items, batch_size, threads, done);
}

}  // namespace cd
